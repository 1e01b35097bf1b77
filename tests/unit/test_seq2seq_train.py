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


def test_a_run_killed_inside_an_epoch_resumes_at_the_same_step_and_ends_where_an_unbroken_run_does(
    tmp_path, monkeypatch
):
    """State is saved inside an epoch; a resumed run starts at the step it had reached, with the same
    batches in the same order and the same dropout stream, so it ends with the same weights."""
    import torch
    from safetensors.torch import load_file

    import elang.export.generate.train as tr
    from elang.export.generate.tiny import TINY_G2P, tiny_g2p_splits

    splits = tiny_g2p_splits(train=320)  # about 11 steps an epoch at batch 32 (variants add pairs)
    recipe = replace(TINY_G2P["swift"], epochs=2, validation_words=20, dropout=0.1)
    real_step = tr.train_step
    seen: list[list[int]] = []

    def record(model, opt, sched, loss_fn, items, bf16=False):  # noqa: ANN001, ANN202
        seen.append([len(x) for x, _ in items])
        return real_step(model, opt, sched, loss_fn, items, bf16)

    monkeypatch.setattr(tr, "train_step", record)
    whole = tr.train_seq2seq(recipe, splits, tmp_path / "a", progress=False, save_every_s=0)
    unbroken = list(seen)
    per_epoch = len(unbroken) // 2
    assert per_epoch >= 5 and len(unbroken) == 2 * per_epoch

    seen.clear()
    calls = {"n": 0}

    def dies_in_epoch_2(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == per_epoch + 3:
            raise KeyboardInterrupt  # killed in epoch 2, its first 2 steps done and saved
        return record(*args, **kwargs)

    monkeypatch.setattr(tr, "train_step", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        tr.train_seq2seq(recipe, splits, tmp_path / "b", progress=False, save_every_s=1e-9)
    (state,) = (tmp_path / "b" / "train").glob("*/state.pt")
    pos = torch.load(state, weights_only=False)["position"]
    assert (pos["epoch"], pos["step"]) == (1, 2)
    monkeypatch.setattr(tr, "train_step", record)
    resumed = tr.train_seq2seq(recipe, splits, tmp_path / "b", progress=False, save_every_s=1e-9)
    assert seen == unbroken  # the steps before the kill, then the rest, in the unbroken run's order
    a = load_file(whole.checkpoint / "model.safetensors")
    b = load_file(resumed.checkpoint / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert resumed.metrics["history"] == whole.metrics["history"]


def test_a_swift_distilled_from_a_super_trains_on_the_supers_greedy_outputs(tmp_path):
    """Sequence-level distillation: the training targets are the teacher's greedy outputs for the
    training inputs (cached with the run), the references' vocabulary is kept, the run says so."""
    import json

    from elang.export.generate.tiny import TINY_G2P, tiny_g2p_checkpoint, tiny_g2p_splits
    from elang.export.generate.train import _pairs, build_tokenizers, generate_texts, load_seq2seq, teacher_targets
    from elang.export.generate.train import train_seq2seq as train

    splits = tiny_g2p_splits(train=200)
    teacher = tiny_g2p_checkpoint("super", tmp_path / "t", splits)
    recipe = replace(TINY_G2P["swift"], epochs=1, validation_words=20, distill_from=str(teacher))
    assert _key(recipe, splits) != _key(replace(recipe, distill_from=None), splits)
    result = train(recipe, splits, tmp_path / "s", progress=False, save_every_s=0)
    assert result.metrics["distilled_from"] == str(teacher) and 0 <= result.metrics["teacher_train_wer"] <= 1
    (cache,) = (tmp_path / "s" / "train").glob("*/teacher_outputs.json")
    outputs = json.loads(cache.read_text())
    model, src, tgt = load_seq2seq(teacher)
    assert outputs[:16] == generate_texts(model, src, tgt, splits.train.inputs[:16], recipe.max_target_tokens)
    distilled, note = teacher_targets(teacher, splits.train, cache.parent, recipe)  # from the cache now
    assert distilled.references[0] == [outputs[0]] and note["teacher_empty"] == len(splits.train) - len(distilled)
    s_src, s_tgt, _ = build_tokenizers(splits)
    assert len(_pairs(distilled, s_src, s_tgt, recipe)) == len(distilled)  # one target per input


def test_a_warm_start_begins_at_the_checkpoint_and_averaging_keeps_the_mean_of_the_last_epochs(tmp_path, monkeypatch):
    """``init_from`` loads the checkpoint's weights before the first step (refused for another shape);
    ``average_last`` averages the ends of the last epochs and records what it did."""
    import torch
    from safetensors.torch import load_file

    import elang.export.generate.train as tr
    from elang.export.generate.tiny import TINY_G2P, tiny_g2p_checkpoint, tiny_g2p_splits

    splits = tiny_g2p_splits(train=200)
    start = tiny_g2p_checkpoint("swift", tmp_path / "start", splits)
    first: dict = {}
    real_step = tr.train_step

    def look(model, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        first.setdefault("weights", {k: v.clone() for k, v in model.state_dict().items()})
        return real_step(model, *args, **kwargs)

    monkeypatch.setattr(tr, "train_step", look)
    recipe = replace(TINY_G2P["swift"], epochs=3, validation_words=20, init_from=str(start), average_last=3)
    assert _key(recipe, splits) != _key(replace(recipe, init_from=None), splits)
    snaps: list = []
    real_avg = tr.average_checkpoints

    def spy(model, src, tgt, run, *args):  # noqa: ANN001, ANN002, ANN202
        snaps.extend(torch.load(p, weights_only=True) for p in sorted(run.glob("epoch-*.pt")))
        return real_avg(model, src, tgt, run, *args)

    monkeypatch.setattr(tr, "average_checkpoints", spy)
    result = tr.train_seq2seq(recipe, splits, tmp_path / "run", progress=False, save_every_s=0)
    given = load_file(start / "model.safetensors")
    assert all(torch.equal(first["weights"][k], given[k]) for k in given)  # trained on from the checkpoint
    avg = result.metrics["averaged"]
    assert avg["epochs"] == [1, 2, 3] and len(snaps) == 3 and 0 <= avg["validation_wer"] <= 1
    kept = load_file(result.checkpoint / "model.safetensors")
    key = "shared.weight"
    mean = sum(s[key] for s in snaps) / 3
    assert torch.allclose(kept[key], mean, atol=1e-6) == avg["kept"]
    assert not list((tmp_path / "run" / "train").glob("*/epoch-*.pt"))  # snapshots removed once done

    with pytest.raises(ValueError, match="shape"):
        wide = replace(TINY_G2P["swift"], d_model=2 * TINY_G2P["swift"].d_model, epochs=1, init_from=str(start))
        tr.train_seq2seq(wide, splits, tmp_path / "wide", progress=False, save_every_s=0)
    with pytest.raises(ValueError, match="average_last"):
        replace(recipe, average_last=4)
