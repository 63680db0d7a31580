"""What the ``from_config`` methods of the task, its parts and the IR GAN share."""


def deserialize_entries(config, **deserializers):
    """A copy of ``config`` with its nested objects rebuilt.

    Each entry named in ``deserializers`` that is still serialized (a dict) becomes
    ``deserializers[name](entry)``; objects, None and absent entries stay as they are.

    Example:
        ``deserialize_entries(config, dtype=keras.dtype_policies.deserialize)``
    """
    config = dict(config)
    for key, deserialize in deserializers.items():
        if isinstance(config.get(key), dict):
            config[key] = deserialize(config[key])
    return config
