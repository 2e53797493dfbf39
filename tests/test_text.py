from ctxopt.text import entities, keywords, overlaps, split_sentences


def test_sentences_split_at_ends_but_not_at_abbreviations_or_initials():
    text = "Dr. Smith met J. Doe in St. Louis. They talked! Then left?\nNew line"
    assert split_sentences(text) == ["Dr. Smith met J. Doe in St. Louis.", "They talked!", "Then left?", "New line"]


def test_keywords_drop_stop_words_and_chit_chat():
    assert keywords("Hey, wow! I really love the moons of Mars") == {"love", "moon", "mar"}


def test_rare_shared_words_weigh_more_than_common_ones():
    docs = ["Mars has moons", "Venus has clouds", "Earth has moons"]
    scores = overlaps("Venus moons", docs)
    assert scores[1] > scores[0] == scores[2] > 0


def test_entities_are_capitalised_words_inside_sentences_and_numbers():
    assert entities("Ed Wood directed films in 1953 with Bela Lugosi.") == {"wood", "1953", "bela", "lugosi"}
