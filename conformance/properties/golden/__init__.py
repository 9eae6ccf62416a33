"""Golden properties: the installed versions against a recorded release."""
