"""Every field of every training config has a docstring: tyro prints it as the flag's --help."""


def test_every_config_field_has_a_docstring():
    import dataclasses

    from tyro._docstrings import get_field_docstring

    from ds_parrots.cli.train import SUBCOMMANDS

    seen, missing = set(), []

    def walk(cls):
        if cls in seen:
            return
        seen.add(cls)
        for f in dataclasses.fields(cls):
            if not get_field_docstring(cls, f.name, ()):
                missing.append(f"{cls.__name__}.{f.name}")
            if dataclasses.is_dataclass(f.type if isinstance(f.type, type) else None):
                walk(f.type)
            elif f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory):
                walk(f.default_factory)

    for cls in SUBCOMMANDS.values():
        walk(cls)
    assert len(seen) >= 6
    assert missing == []
