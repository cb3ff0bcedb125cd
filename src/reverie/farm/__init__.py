"""The render farm: executors (this process, local worker processes, a Ray actor pool) and the driver
that hands out a batch's steps and records what finishes."""
