"""Task 6.1: gradient buckets.

Sending every gradient in its own allreduce pays the latency alpha once per parameter;
sending all of them in one allreduce must wait for the whole backward pass. Buckets are
the middle way (PyTorch DDP): pack gradients into buffers of about ``bucket_bytes`` and
allreduce each bucket as soon as all its gradients exist.

The backward pass produces gradients in reverse: the last layer's first. So:

- walk the parameters from the last one to the first;
- add each to the current bucket (``param.data.nbytes`` bytes);
- as soon as the bucket holds at least ``bucket_bytes``, close it and start a new one;
- the last, possibly smaller, bucket is kept.

Example: sizes 400, 400, 800, 40 bytes and bucket_bytes = 1000 give [[3, 2, 1], [0]]:
40 + 800 = 840 is still below 1000, adding 400 makes 1240, so that bucket closes with
parameters 3, 2, 1; parameter 0 (400 bytes) is the last, smaller bucket.

Grade it:  python -m minipar.check buckets buckets:make_buckets
"""


def make_buckets(params, bucket_bytes: int) -> list[list[int]]:
    """Parameter indices grouped into buckets, last parameter first (see above)."""
    # TODO: Task 6.1
    raise NotImplementedError("Task 6.1: group the parameters into buckets (the TODO in "
                              "buckets.py)")
