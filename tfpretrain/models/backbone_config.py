"""One config scheme for the functional backbones (`BertEncoder`, `GptDecoder`, `AwdLstmEncoder`)."""

import keras


class BackboneConfig:
    """Mixin for a functional `keras.Model` whose config is its constructor arguments.

    The class lists its architecture arguments in ``CONSTRUCTOR_ARGUMENTS``
    (each kept as an attribute of the same name). ``get_config`` adds the name,
    the trainable flag and, when it is not the global default, the dtype
    policy, read from the ``token_embedding`` layer (a functional model keeps
    no policy of its own, so a mixed-precision backbone would otherwise reload
    as float32). ``from_config`` sets ``trainable`` after construction:
    a functional model given ``trainable=False`` at construction leaves its
    layers trainable, so only this way does a frozen backbone reload frozen.
    ``constructor_config()`` is the architecture alone, what the model
    directories' JSON files hold.
    """

    CONSTRUCTOR_ARGUMENTS = ()

    def keep_constructor_arguments(self, arguments):
        """Keeps each of ``CONSTRUCTOR_ARGUMENTS`` as an attribute, from ``arguments`` (the constructor's ``locals()``).

        NumPy scalars become Python numbers, so that the config is plain JSON.
        """
        for name in self.CONSTRUCTOR_ARGUMENTS:
            value = arguments[name]
            setattr(self, name, value.item() if hasattr(value, "item") else value)

    def constructor_config(self):
        """The architecture arguments alone: no name, dtype or trainable flag."""
        return {name: getattr(self, name) for name in self.CONSTRUCTOR_ARGUMENTS}

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, **self.constructor_config()}
        policy = self.token_embedding.dtype_policy
        if policy.name != keras.config.dtype_policy().name:
            config["dtype"] = keras.dtype_policies.serialize(policy)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        trainable = config.pop("trainable", True)
        model = cls(**config)
        model.trainable = trainable
        return model
