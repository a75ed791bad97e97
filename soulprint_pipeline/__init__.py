"""soulprint_pipeline: a person's chat export in, a quick-pass soulprint out."""

import pyarrow as _pa

# pyarrow's default allocator (mimalloc) keeps freed pages: with one batch after another it held
# about 60 MB more than jemalloc or the system allocator for the same parse, at the same speed.
try:
    _pa.set_memory_pool(_pa.jemalloc_memory_pool())
except NotImplementedError:  # a pyarrow built without jemalloc
    _pa.set_memory_pool(_pa.system_memory_pool())
