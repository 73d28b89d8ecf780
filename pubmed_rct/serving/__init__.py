"""The serving wing: one model (and, given an index, the search wing) behind a web page and a JSON API (web),
started by `serve` (command). The top of the house: it imports inference and search, nothing imports it."""
