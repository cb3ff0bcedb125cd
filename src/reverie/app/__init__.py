"""The shells: the `reverie` command, terminal progress, the web page and the demo's sample images."""
