"""Dataset → TFRecord builders for TAU22 and the DIR sets (``python -m tfrecords_builder -h``).

The TFRecord format version they record is ``asc_core.writer.BUILDER_VERSION``.
"""
