"""Hub ids: `hf-hub:OWNER/NAME[@REVISION]`, the revision pinning what is fetched."""

import pytest

from kda.files import split_hub_id


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hf-hub:me/model", ("me/model", None)),
        ("hf-hub:me/model@main", ("me/model", "main")),
        ("hf-hub:me/model@" + "0" * 40, ("me/model", "0" * 40)),
        ("hf-hub:me/model@", ("me/model", None)),
    ],
)
def test_hub_ids_split_into_repository_and_revision(text, expected):
    assert split_hub_id(text) == expected
