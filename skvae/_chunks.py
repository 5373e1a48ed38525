"""Row chunks that bound the memory of every pass over n_samples rows."""

#: Rows per chunk; bounds a pass's temporaries for any n_samples.
CHUNK_ROWS = 4096


def chunks(n):
    """Row slices of at most CHUNK_ROWS rows covering range(n)."""
    return [slice(s, min(s + CHUNK_ROWS, n)) for s in range(0, n, CHUNK_ROWS)]
