"""Class-name matching (kda.names), shared by knowledge binding and knowledge files: an id always wins over
another class's readable name, whichever comes first."""

from kda.names import match_classes


def test_an_id_wins_over_another_classs_readable_name():
    # class 0's readable name is class 1's id
    available = [("Surfing", "Skiing"), ("Skiing", "Snow skiing")]
    assert match_classes(["skiing", "surfing", "Snow Skiing"], available) == [1, 0, 1]
    assert match_classes(["skiing"], available[::-1]) == [0]
    assert match_classes(["Sailing"], available) == [None]


def test_classes_with_and_without_a_readable_name():
    # ids alone (a class list) next to (id, readable name) pairs (a knowledge file)
    available = ["Archery", ("ApplyEyeMakeup", "Apply Eye Makeup"), "Bowling"]
    assert match_classes(["bowling", "apply eye makeup", "ARCHERY", "applyeyemakeup"], available) == [2, 1, 0, 1]
    assert match_classes(["Archery"], []) == [None]
