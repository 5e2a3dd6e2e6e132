"""Column names of the converted interaction frames and their RecBole atomic-file types."""

USER, ITEM, RATING, TIME = "user_id", "item_id", "rating", "timestamp"
COLUMN_ORDER = (USER, ITEM, RATING, TIME)
FIELD_TYPES = {USER: "token", ITEM: "token", RATING: "float", TIME: "float"}
