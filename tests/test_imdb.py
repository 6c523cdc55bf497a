from pathlib import Path

import numpy as np
import pytest
import torch

from dllabs.data import corpus
from dllabs.data.imdb import IMDBDataModule, pad_collate
from dllabs.data.imdb_sources import read_archive, read_csv, read_folders
from dllabs.data.text import PAD_ID, UNK_ID, Vocabulary, english_stopwords, normalize, tokenize
from dllabs.errors import ConfigError, CorruptDataError, DatasetNotFoundError
from tests.conftest import SHARED_DATA
from tests.fixtures import imdb as fixture


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imdb")
    fixture.make(root)
    return root


def datamodule(root: Path, cache: Path, **kwargs) -> IMDBDataModule:
    settings = {
        "data_dir": str(root),
        "cache_dir": str(cache),
        "min_freq": fixture.MIN_FREQ,
        "download": False,
    }
    return IMDBDataModule(**{**settings, **kwargs})


def test_normalisation_lowercases_and_strips_breaks_and_punctuation():
    assert normalize("Great<br />movie!! It's <BR/>FINE, well-made.").split() == [
        "great",
        "movie",
        "its",
        "fine",
        "wellmade",
    ]
    assert tokenize("This is THE best film, and I loved it!") == ["best", "film", "loved"]


def test_stopwords_are_nltks_english_list():
    words = english_stopwords()
    assert len(words) == 179
    assert {"the", "not", "no", "don", "t", "wouldn't", "ourselves"} <= words
    assert "film" not in words


def test_vocabulary_reserves_pad_and_unk_and_cuts_rare_words():
    vocab = Vocabulary.build([["good", "good", "bad"], ["good", "bad", "rare"]], min_freq=2)
    assert vocab.words == ["<pad>", "<unk>", "good", "bad"]
    assert (PAD_ID, UNK_ID) == (0, 1)
    assert vocab.encode(["good", "rare", "never"]) == [2, UNK_ID, UNK_ID]
    assert Vocabulary.build([["a", "b", "b", "c"]], min_freq=1, max_size=3).words == ["<pad>", "<unk>", "b"]


def test_csv_folders_and_archive_hold_the_same_reviews(corpus_dir):
    folder = corpus_dir / "imdb"
    loaded = [
        read_csv(folder / "IMDB Dataset.csv"),
        read_folders(folder / "aclImdb"),
        read_archive(folder / "aclImdb_v1.tar.gz"),
    ]
    as_sets = [sorted(zip(texts, labels.tolist())) for texts, labels in loaded]
    assert len(as_sets[0]) == fixture.NUM_REVIEWS
    assert as_sets[0] == as_sets[1] == as_sets[2]
    assert sum(label for _, label in as_sets[0]) == fixture.NUM_REVIEWS // 2
    texts, labels = loaded[1]
    assert texts == loaded[2][0] and labels.tolist() == loaded[2][1].tolist()


@pytest.mark.parametrize("source", ["csv", "aclimdb", "archive"])
def test_every_source_gives_a_7_1_2_split(corpus_dir, tmp_path, source):
    dm = datamodule(corpus_dir, tmp_path, source=source)
    dm.setup()
    sizes = {name: len(ds) for name, ds in dm.datasets.items()}
    assert sizes == {"train": 168, "val": 24, "test": 48}
    split = dm.corpus.splits
    assert len(np.unique(np.concatenate(list(split.values())))) == fixture.NUM_REVIEWS


def test_vocabulary_sees_only_training_text_without_stop_or_rare_words(corpus_dir, tmp_path):
    dm = datamodule(corpus_dir, tmp_path)
    dm.setup()
    texts, _ = read_csv(corpus_dir / "imdb" / "IMDB Dataset.csv")
    markers = {
        name: {w for i in dm.corpus.splits[name] for w in tokenize(texts[i]) if w.startswith("marker")}
        for name in ("train", "val", "test")
    }
    vocab = set(dm.vocab.words)
    assert markers["train"] <= vocab and len(markers["train"]) == 168
    assert not (markers["val"] | markers["test"]) & vocab, "validation/test words leaked into the vocabulary"
    assert not vocab & english_stopwords()
    assert not any(w.startswith("once") for w in vocab)
    assert set(fixture.POSITIVE + fixture.NEGATIVE) <= vocab
    assert dm.vocab.words[:2] == ["<pad>", "<unk>"] and dm.vocab_size == len(vocab)


def test_items_are_truncated_and_batches_padded(corpus_dir, tmp_path):
    dm = datamodule(corpus_dir, tmp_path, max_length=5, batch_size=8)
    dm.setup()
    tokens, label = dm.datasets["train"][0]
    assert tokens.dtype == torch.int64 and len(tokens) == 5 and label in (0, 1)
    full = datamodule(corpus_dir, tmp_path, max_length=None)
    full.setup()
    assert torch.equal(full.datasets["train"][0][0][:5], tokens)
    assert len(full.datasets["train"][0][0]) > 5

    batch = pad_collate([(torch.tensor([5, 6, 7]), 1), (torch.tensor([8]), 0)])
    padded, lengths, labels = batch
    assert padded.tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID]]
    assert lengths.tolist() == [3, 1] and labels.tolist() == [1, 0]
    padded, lengths, labels = next(iter(full.train_dataloader()))
    assert padded.shape == (96, lengths.max())
    assert all((row[n:] == PAD_ID).all() and (row[:n] != PAD_ID).all() for row, n in zip(padded, lengths))


def test_second_run_loads_the_cache_without_tokenising(corpus_dir, tmp_path, monkeypatch):
    first = datamodule(corpus_dir, tmp_path)
    first.prepare_data()
    first.setup()
    assert first.cache_hit is False and len(list(tmp_path.glob("imdb-*.npz"))) == 1

    def no_tokenising(*args, **kwargs):
        raise AssertionError("re-tokenised although the cache was valid")

    monkeypatch.setattr(corpus, "tokenize_all", no_tokenising)
    second = datamodule(corpus_dir, tmp_path, max_length=7)
    second.setup()
    assert second.cache_hit is True
    assert second.vocab.words == first.vocab.words
    for name in ("train", "val", "test"):
        assert np.array_equal(second.corpus.splits[name], first.corpus.splits[name])
    with pytest.raises(AssertionError, match="re-tokenised"):
        datamodule(corpus_dir, tmp_path, min_freq=3).setup()


def test_corrupt_cache_is_rebuilt(corpus_dir, tmp_path):
    datamodule(corpus_dir, tmp_path).setup()
    (cache_file,) = tmp_path.glob("imdb-*.npz")
    cache_file.write_bytes(b"not a zip file")
    dm = datamodule(corpus_dir, tmp_path)
    dm.setup()
    assert dm.cache_hit is False and len(dm.datasets["train"]) == 168


def test_csv_without_sentiment_column_is_a_clear_error(tmp_path):
    path = tmp_path / "imdb" / "IMDB Dataset.csv"
    path.parent.mkdir()
    path.write_text("review,label\nnice film,positive\n")
    with pytest.raises(CorruptDataError, match=r"lacks column\(s\) \['sentiment'\]"):
        datamodule(tmp_path, tmp_path / "cache").setup()


def test_unknown_sentiment_labels_are_a_clear_error(tmp_path):
    path = fixture.write_csv(tmp_path / "IMDB Dataset.csv", [("nice film", "positive"), ("meh", "neutral")])
    with pytest.raises(CorruptDataError, match=r"unknown sentiment labels \['neutral'\]"):
        read_csv(path)


def test_missing_data_says_which_file_to_put_where(tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        datamodule(tmp_path / "nowhere", tmp_path / "cache").setup()
    message = str(error.value)
    assert (
        "IMDB Dataset.csv" in message
        and "aclImdb" in message
        and str(tmp_path / "nowhere" / "imdb") in message
    )


def test_bad_settings_are_config_errors(tmp_path):
    from dllabs.signature_check import check_arguments

    # declared on the constructor's signature, checked before launch (not again by the constructor)
    with pytest.raises(ConfigError, match="three fractions"):
        check_arguments({"data_dir": str(tmp_path), "split": [0.8, 0.2]}, "dllabs.data.imdb.IMDBDataModule", "data")
    with pytest.raises(ConfigError, match="data.source"):
        check_arguments({"data_dir": str(tmp_path), "source": "parquet"}, "dllabs.data.imdb.IMDBDataModule", "data")


def test_prediction_data_from_text_file_and_csv(corpus_dir, tmp_path):
    dm = datamodule(corpus_dir, tmp_path)
    dm.setup()
    single = dm.prediction_data(text="A wonderful, superb film!")
    tokens, lengths, labels = next(iter(single.loader))
    assert single.texts == ["A wonderful, superb film!"] and single.ids == ["0"]
    assert dm.vocab.decode(tokens[0].tolist()) == ["wonderful", "superb", "film"] and labels.tolist() == [-1]

    lines = tmp_path / "reviews.txt"
    lines.write_text("awful boring mess\n\nthe and a\n")
    many = dm.prediction_data(input=str(lines))
    tokens, lengths, _ = next(iter(many.loader))
    assert many.texts == ["awful boring mess", "the and a"] and lengths.tolist() == [3, 1]
    assert tokens[1, 0] == UNK_ID, "a review of stop words only becomes one <unk>"

    table = fixture.write_csv(tmp_path / "labelled.csv", [("superb", "positive"), ("dull", "negative")])
    assert dm.prediction_data(input=str(table)).labels.tolist() == [1, 0]
    with pytest.raises(ConfigError):
        dm.prediction_data()


def test_vocabulary_travels_in_the_state_dict(corpus_dir, tmp_path):
    trained = datamodule(corpus_dir, tmp_path)
    trained.setup()
    elsewhere = datamodule(tmp_path / "no-data-here", tmp_path / "other-cache")
    elsewhere.load_state_dict(trained.state_dict())
    batch = next(iter(elsewhere.prediction_data(text="brilliant camera").loader))
    assert elsewhere.vocab.decode(batch[0][0].tolist()) == ["brilliant", "camera"]


@pytest.mark.realdata
def test_real_csv_split_and_vocabulary(tmp_path):
    """Preprocessing speed on the real CSV is measured by benchmarks/bench_imdb_preprocess.py, not here."""
    if not (SHARED_DATA / "imdb").is_dir():
        pytest.skip(f"real IMDB data not available under {SHARED_DATA} (set DLLABS_DATA_DIR)")
    dm = IMDBDataModule(str(SHARED_DATA), cache_dir=str(tmp_path), download=False)
    dm.setup()
    assert {name: len(ds) for name, ds in dm.datasets.items()} == {"train": 35000, "val": 5000, "test": 10000}
    assert 34_000 < dm.vocab_size < 40_000
