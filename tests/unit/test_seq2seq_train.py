"""The T5-from-a-config training recipe: the output head's init and the queries' step size."""

from dataclasses import replace

import pytest

from elang.export.generate.train import PRESETS, Seq2SeqRecipe, _key, epoch_batches, new_model, new_optimizer

pytestmark = pytest.mark.export

SMALL = Seq2SeqRecipe("t", d_model=64, d_ff=128, num_heads=4, encoder_layers=1, decoder_layers=1, lr=1e-3)


def test_scaled_attention_starts_the_head_small_and_steps_queries_at_lr_over_sqrt_dkv():
    import torch

    model = new_model(SMALL, vocab_size=50)
    assert abs(model.lm_head.weight.std().item() - 64**-0.5) < 0.02  # HF's untied init is std 1.0
    ids = torch.randint(3, 50, (8, 12))
    logits = model(input_ids=ids, labels=ids).logits
    assert logits.std().item() < 3  # not the ~8 of std-1.0 head weights at d_model 64

    opt, _ = new_optimizer(model, SMALL, total_steps=100)
    queries = [n for n, p in model.named_parameters() if n.endswith(".q.weight")]
    assert len(queries) == 3  # encoder self, decoder self, decoder cross
    by_id = {id(p): g["initial_lr"] for g in opt.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert by_id[id(named[queries[0]])] == pytest.approx(1e-3 / 4)  # d_kv = 16
    assert by_id[id(named["lm_head.weight"])] == pytest.approx(1e-3)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(named)


def test_unscaled_recipe_is_t5s_own_init_and_one_learning_rate():
    raw = replace(SMALL, scaled_attention=False)
    model = new_model(raw, vocab_size=50)
    assert model.lm_head.weight.std().item() > 0.9
    opt, _ = new_optimizer(model, raw, total_steps=100)
    assert [g["initial_lr"] for g in opt.param_groups] == [pytest.approx(1e-3)]


def test_the_recipe_change_is_a_new_cache_key_and_batches_cover_every_pair_once():
    class Splits:
        fingerprint = "x"

    assert _key(SMALL, Splits) != _key(replace(SMALL, scaled_attention=False), Splits)
    items = [([1] * (1 + i % 9), [2]) for i in range(300)]
    for batching in ("length", "random"):
        r = replace(SMALL, batch_size=32, batching=batching)
        batches = epoch_batches(items, r, epoch=0)
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(300))
        assert epoch_batches(items, r, epoch=0) == batches  # seeded
        assert epoch_batches(items, r, epoch=1) != batches
    with pytest.raises(ValueError, match="batching"):
        epoch_batches(items, replace(SMALL, batching="sorted"), 0)
    with pytest.raises(ValueError, match="schedule"):
        new_optimizer(new_model(SMALL, 50), replace(SMALL, schedule="cosine"), 10)
    assert PRESETS["super"].d_model > PRESETS["swift"].d_model
