"""Building blocks of the plugin's models: plain ``nn.Module``s with explicit arguments."""
