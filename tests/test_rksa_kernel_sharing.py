"""RKSA's kernel options: one kernel shared by every block (``kernel_sharing``), the kernel
variants (``kernel_variant``), and checkpoints written before the kernel was its own module."""

import pytest
import torch
from conftest import fast_config
from test_rksa_layers import HIDDEN, JITTER, exact_case, make_inputs, random_table

from recbole_sasrec_ext import Config, load_data_and_model, run
from recbole_sasrec_ext.apps.quick_start import build
from recbole_sasrec_ext.layers.rksa_attention import KernelizedSkewAttention, MsnNoise
from recbole_sasrec_ext.layers.rksa_kernel import RelationKernel, kernel_alignment_loss
from recbole_sasrec_ext.training.registry import get_trainer


def _without_kernel(layer: KernelizedSkewAttention) -> KernelizedSkewAttention:
    """A kernel-less layer with ``layer``'s scores and values."""
    bare = KernelizedSkewAttention(HIDDEN, 0.0, jitter=JITTER, own_kernel=False).double()
    bare.load_state_dict({k: v for k, v in layer.state_dict().items()
                          if not k.startswith("kernel.")})
    return bare


# ----------------------------------------------------------------------------- layer level
@pytest.mark.parametrize("training", [False, True])
def test_shared_state_gives_the_same_output_as_the_own_kernel(training):
    layer, (x, valid, item_emb, user_emb, cooc) = exact_case(torch.float64)
    bare = _without_kernel(layer)
    assert bare.kernel is None and len(list(bare.parameters())) == 4  # scores and value only
    gen = torch.Generator().manual_seed(3)
    noise = MsnNoise(*(torch.randn(1, *valid.shape, generator=gen, dtype=torch.float64)
                       for _ in range(2)))
    noise = noise if training else None
    own = layer.train(training)(x, valid, item_emb, user_emb, cooc, noise=noise)
    state = layer.kernel(valid, item_emb, user_emb, cooc)
    shared = bare.train(training)(x, valid, kernel_state=state, noise=noise)
    for a, b in zip(own, shared):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_kernel_state_factorises_once():
    layer, (_, valid, item_emb, user_emb, cooc) = exact_case(torch.float64)
    state = layer.kernel(valid, item_emb, user_emb, cooc)
    first = state.cholesky()
    assert state.cholesky() is first  # cached: blocks sharing the state share the factor
    torch.testing.assert_close(first[0] @ first[0].transpose(-1, -2), first[1])


def test_a_kernel_less_layer_needs_a_state():
    layer, (x, valid, item_emb, user_emb, cooc) = exact_case(torch.float64)
    with pytest.raises(ValueError, match="pass kernel_state"):
        _without_kernel(layer)(x, valid, item_emb, user_emb, cooc)


@pytest.mark.parametrize(
    "variant, names", [("cooccurrence", ("co-occurrence",)), ("learned", ("item", "user"))]
)
def test_kernel_variants_mix_only_their_kernels(variant, names):
    table = random_table(13)
    seq = torch.tensor([[3, 1, 4, 1, 5, 8, 2], [2, 6, 5, 3, 0, 0, 0]])
    _, valid, item_emb, user_emb, cooc = make_inputs(seq, table, seed=14)
    torch.manual_seed(0)
    kernel = RelationKernel(HIDDEN, JITTER, 0.7, variant)
    assert kernel.names == names and set(kernel.length_scales()) == set(names) - {"co-occurrence"}
    parts, mixture = kernel.parts(valid, item_emb, user_emb, cooc)
    assert mixture.shape == (2, len(names))
    by_name = {"co-occurrence": parts.cooc, "item": parts.item, "user": parts.user}
    expected = sum(mixture[:, k, None, None] * by_name[n] for k, n in enumerate(names))
    pair = valid.unsqueeze(-1) & valid.unsqueeze(-2)
    torch.testing.assert_close(parts.kernel[pair], expected[pair])
    mask = pair.tril()
    loss = kernel_alignment_loss(parts, mask)
    if variant == "cooccurrence":  # no learned kernel: nothing to align, no RBF computed
        assert parts.item is None and parts.user is None and loss == 0
    else:
        gap = (parts.item - parts.cooc) ** 2 + (parts.user - parts.cooc) ** 2
        torch.testing.assert_close(loss, gap[mask].mean())


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="kernel variant must be one of"):
        RelationKernel(HIDDEN, variant="rbf")


def test_checkpoints_with_the_old_parameter_names_load():
    layer, _ = exact_case(torch.float64)
    old = {k.replace("kernel.", ""): v for k, v in layer.state_dict().items()}
    assert "mixture.weight" in old and "raw_length_item" in old
    fresh = KernelizedSkewAttention(HIDDEN, 0.0, jitter=JITTER).double()
    fresh.load_state_dict(old)  # strict: every old key found its new place
    for key, value in layer.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value, rtol=0, atol=0)


# ----------------------------------------------------------------------------- model level
def _model(tiny_data, **extra):
    return build(Config("RKSA", "tiny", config_dict=fast_config(tiny_data, **extra)))[-1]


def test_shared_kernel_has_one_set_of_kernel_parameters(tiny_data):
    per_block = _model(tiny_data, n_layers=3)
    shared = _model(tiny_data, n_layers=3, kernel_sharing="shared")
    d = 16  # fast_config's hidden_size
    one_kernel = d * 3 + 3 + 2  # mixture weights and bias, two length-scales
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(per_block) - count(shared) == 2 * one_kernel
    kernels = shared.relation_kernels()
    assert len(kernels) == 3 and all(k is shared.relation_kernel for k in kernels)
    assert all(block.attention.kernel is None for block in shared.blocks)
    assert len({id(k) for k in per_block.relation_kernels()}) == 3
    assert sum(".kernel." in k or k.startswith("relation_kernel.")
               for k in shared.state_dict()) == 4


@pytest.mark.parametrize("training", [False, True])
def test_shared_kernel_is_causal(tiny_data, training):
    from recbole.data.interaction import Interaction

    model = _model(tiny_data, kernel_sharing="shared", hidden_dropout_prob=0.0,
                   attn_dropout_prob=0.0)
    model.train(training)
    outs = []
    for seq in ([1, 2, 3, 4, 5, 0, 0, 0, 0, 0], [1, 2, 3, 7, 8, 0, 0, 0, 0, 0]):
        torch.manual_seed(0)
        batch = {"item_id_list": torch.tensor([seq]), "item_length": torch.tensor([5]),
                 "user_id": torch.tensor([1])}
        outs.append(model(Interaction(batch)))
    torch.testing.assert_close(outs[0][0, :3], outs[1][0, :3], atol=1e-5, rtol=0)
    assert not torch.allclose(outs[0][0, 3], outs[1][0, 3])


def test_shared_learned_variant_explains_and_round_trips(tiny_data):
    cfg = fast_config(tiny_data, epochs=1, kernel_sharing="shared", kernel_variant="learned")
    result = run("RKSA", "tiny", config_dict=cfg)
    assert set(result.explanation.mixture) == {"item", "user"}
    assert abs(sum(result.explanation.mixture.values()) - 1) < 1e-5
    config, model, _, _, _, test = load_data_and_model(result.checkpoint)
    assert model.relation_kernel is not None and model.relation_kernel.names == ("item", "user")
    again = get_trainer(config["MODEL_TYPE"], config["model"])(config, model).evaluate(
        test, load_best_model=False
    )
    assert {k: float(v) for k, v in again.items()} == result.test_result


@pytest.mark.parametrize("key, value", [("kernel_sharing", "all"), ("kernel_variant", "rbf")])
def test_kernel_keys_are_validated(tiny_data, key, value):
    from recbole_sasrec_ext import PluginError

    with pytest.raises(PluginError, match=f"'{key}' = '{value}' is not allowed"):
        Config("RKSA", "tiny", config_dict=fast_config(tiny_data, **{key: value}))
