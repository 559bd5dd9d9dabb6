"""Class-name matching (kda.names), shared by knowledge binding and knowledge files: an id always wins over
another class's readable name, whichever comes first."""

from kda.names import match_classes


def test_an_id_wins_over_another_classs_readable_name():
    # class 0's readable name is class 1's id
    available = [("Surfing", "Skiing"), ("Skiing", "Snow skiing")]
    assert match_classes(["skiing", "surfing", "Snow Skiing"], available) == [1, 0, 1]
    assert match_classes(["skiing"], available[::-1]) == [0]
    assert match_classes(["Sailing"], available) == [None]
