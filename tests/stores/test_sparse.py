"""BM25 keyword vectors: tokenising, stemming, saturation and length normalisation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_profiles import examples

from ctxopt.stores import sparse


def test_terms_are_lowercased_stemmed_and_free_of_stopwords():
    assert sparse.terms("The Proteins were BINDING to cells") == ["protein", "bind", "cell"]


def test_term_frequency_saturates():
    (_, [once]), (_, [often]) = sparse.doc_vector("gene", 1.0), sparse.doc_vector("gene " * 50, 1.0)
    assert once < often < sparse.K1 + 1


def test_a_longer_document_weighs_the_same_term_less():
    def weight(text):
        indices, values = sparse.doc_vector(text, avgdl=10.0)
        return dict(zip(indices, values))[sparse.term_index("gene")]

    assert weight("gene expression") > weight("gene expression " + "other words " * 20)


@settings(max_examples=examples(100))
@given(st.text(max_size=200))
def test_vectors_are_sorted_unique_and_positive(text):
    indices, values = sparse.doc_vector(text, avgdl=20.0)
    assert indices == sorted(set(indices)) and all(v > 0 for v in values)
    assert all(0 <= i < 2**31 for i in indices)
