"""The look-development web page (`reverie ui`); needs the `ui` extra."""
