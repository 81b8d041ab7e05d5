"""The assets the bad-input cases share: a tiny sentencepiece tokenizer, trained once per session."""

import pytest


@pytest.fixture(scope="session")
def assets(tmp_path_factory):
    from text_corpus import train_tiny

    return {"tokenizer": train_tiny(tmp_path_factory.mktemp("sp")).path}
