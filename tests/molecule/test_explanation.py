"""Atom / bond attributions: hand values of a linear model, the directed -> undirected
bond sums, the drawing, the choice of molecules, and (slow) `--mode=explain` end to end."""

import json
import os
import types

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments import molecule as molecule_main
from experiments.configs import molecule as molecule_configs
from medjax.engine import config as engine_config
from medjax.engine import train
from medjax.engine.errors import InputError
from medjax.explain import report
from medjax.molecule import drawing, explanation, featurize, graphs
from medjax.molecule import task as task_lib

SMILES = ["CCO", "c1ccccc1"]
O_COLUMN = featurize.feature_index("element", 8)
STD, MEAN = 2.0, 0.5


class LinearModel(nn.Module):
  """One graph per block: output = sum_atoms w.x_v + sum_directed_edges u.e_vw (x2 tasks)."""

  @nn.compact
  def __call__(self, atom_features, bond_features, edge_src, edge_dst, edge_rev,
               node_graph, node_mask, edge_mask, graph_mask, descriptors=None, *,
               train=False):
    w = self.param("w", nn.initializers.zeros, (featurize.ATOM_DIM,))
    u = self.param("u", nn.initializers.zeros, (featurize.BOND_DIM,))
    total = ((atom_features @ w) * node_mask).sum(1) + ((bond_features @ u) * edge_mask).sum(1)
    return jax.numpy.stack([total, -total], -1)[:, None, :]  # [blocks, 1 graph, 2 tasks]


def linear_task(smiles):
  """A regression spec (target std 2, mean 0.5) around LinearModel and these molecules."""
  spec = task_lib.ModelSpec()
  spec.cfg = ml_collections.ConfigDict({"descriptors": False})
  spec.task_type, spec.task_names, spec.num_classes = "regression", ("y", "z"), 0
  spec.target_mean, spec.target_std = np.full(2, MEAN), np.full(2, STD)
  spec.model = LinearModel()
  spec.data = types.SimpleNamespace(
      smiles=smiles, store=graphs.GraphStore.from_graphs(
          [featurize.featurize_smiles(s) for s in smiles]))
  spec.normalised_targets = spec.descriptors = None
  spec.split = {"val": np.arange(len(smiles)), "test": np.zeros(0, np.int64)}
  return spec


def explain_cfg(**overrides):
  cfg = engine_config.base_config().explain
  cfg.update(dict(ig_steps=8, faithfulness_steps=4, random_seeds=2, **overrides))
  return cfg


def linear_variables(mass_weight, o_weight, bond_weight):
  w = np.zeros(featurize.ATOM_DIM, np.float32)
  w[featurize.MASS_INDEX], w[O_COLUMN] = mass_weight, o_weight
  return {"params": {"w": w, "u": np.full(featurize.BOND_DIM, bond_weight, np.float32)}}


@pytest.fixture(scope="module")
def benzyl_alcohol():
  """Prepared inputs of OCc1ccccc1 under the hand-set linear model."""
  task = linear_task(["OCc1ccccc1"])
  return explanation.prepare(task, linear_variables(1.0, 3.0, 1.0), 0, 0)


def ig_per_item(inputs, part):
  x, apply = inputs.parts[part]
  attr, extras = report.attribute_with("integrated_gradients", apply,
                                       linear_variables(1.0, 3.0, 1.0), x, inputs.output,
                                       steps=4)
  return explanation.per_item(inputs, part, np.asarray(attr)[0].sum(-1)), extras["gap"]


def test_linear_model_atom_attributions_are_the_hand_values(benzyl_alcohol):
  # IG of a linear score from a zero baseline is exact: std * (mass / 100 + 3 [atom is O]).
  atoms, gap = ig_per_item(benzyl_alcohol, "atoms")
  np.testing.assert_allclose(atoms, STD * np.array([0.15999 + 3] + [0.12011] * 7), rtol=1e-4)
  assert abs(float(gap[0])) < 1e-4


def test_linear_model_bond_attributions_count_both_directed_edges(benzyl_alcohol):
  # u = 1 counts the set bits of each directed edge, and each bond has two: O-C and C-C(ring)
  # single bonds have type + stereo-none (2 bits), the ring's aromatic bonds also
  # conjugated and in-ring (4 bits).
  bonds, _ = ig_per_item(benzyl_alcohol, "bonds")
  np.testing.assert_allclose(bonds, STD * 2 * np.array([2, 2] + [4] * 6), rtol=1e-5)


def test_linear_model_prediction(benzyl_alcohol):
  # Prediction: mean + std * (atoms' mass + 3 for O + 2 directed x (2 x 2 + 6 x 4) bond bits).
  hand = MEAN + STD * (0.15999 + 7 * 0.12011 + 3 + 2 * (2 * 2 + 6 * 4))
  assert benzyl_alcohol.prediction == f"y = {hand:.4g}"


@pytest.mark.slow  # ten compilations: ~5-10 s on a CPU
def test_linear_model_checks(benzyl_alcohol):
  random = linear_variables(-0.5, 1.0, 0.2)
  atoms, checks = explanation.explain_part(benzyl_alcohol, "atoms",
                                           linear_variables(1.0, 3.0, 1.0), random,
                                           explain_cfg(), jax.random.key(0))
  gap = checks["integrated_gradients_completeness"]
  assert gap["abs_gap_max"] < 1e-4 * gap["score_change_mean"]
  assert gap["score_change_mean"] == pytest.approx(atoms.sum(), rel=1e-5)
  # Deleting O first (the largest attribution) drops the score fastest: below random.
  faith = checks["faithfulness"]
  assert faith["deletion_auc"] < faith["random_deletion_auc"]
  # Per atom, trained 2 (m + 3 [O]) against re-initialised 2 (-m / 2 + [O]).
  mass = np.array([0.15999] + [0.12011] * 7)
  is_o = np.eye(8)[0]
  rho = stats.spearmanr(np.abs(mass + 3 * is_o), np.abs(-mass / 2 + is_o)).statistic
  assert checks["randomisation_per_item"]["abs"] == pytest.approx(rho)


def test_classification_scores_are_the_task_logit_and_its_probability():
  spec = task_lib.ModelSpec()
  spec.task_names, spec.num_classes = ("a", "b"), 3
  raw = np.array([[[0.1, 0.7, -0.2, 2.0, 0.3, -1.0]]], np.float32)  # [1 block, 1 graph, 2x3]
  spec.task_type = "multiclass"  # task b's logits: 2.0, 0.3, -1.0 -> class 0
  text, cls = explanation.describe(spec, 1, raw[0, 0])
  p = np.exp(raw[0, 0, 3:]) / np.exp(raw[0, 0, 3:]).sum()
  assert (cls, text) == (0, f"b: class 0 (p = {p[0]:.3f})")
  assert float(explanation.output_fn(spec, 1, cls)(raw)[0]) == pytest.approx(2.0)
  assert float(explanation.probability_fn(spec, 1, cls)(raw)[0]) == pytest.approx(p[0])
  spec.task_type, spec.num_classes = "binary", 0
  binary = raw[..., :2]
  assert explanation.describe(spec, 1, binary[0, 0]) == (
      f"P(b) = {1 / (1 + np.exp(-0.7)):.3f}", None)
  assert float(explanation.output_fn(spec, 1)(binary)[0]) == pytest.approx(0.7)
  assert float(explanation.probability_fn(spec, 1)(binary)[0]) == pytest.approx(
      1 / (1 + np.exp(-0.7)))


def test_directed_edges_sum_into_their_bonds():
  mol = featurize.mol_from_smiles("CC(=O)O")  # bonds: 0 C0-C1, 1 C1=O2, 2 C1-O3
  task = linear_task(["CC(=O)O"])
  block = explanation.single_block(task, 0)
  src, dst = block["edge_src"][0], block["edge_dst"][0]
  bond_of_edge = explanation.edge_bonds(mol, src, dst)
  assert sorted(bond_of_edge.tolist()) == [0, 0, 1, 1, 2, 2]
  np.testing.assert_array_equal(explanation.undirected(np.ones(6), bond_of_edge, 3), [2, 2, 2])
  # Only the edges leaving atom 2 (the carbonyl O): its one bond, once.
  np.testing.assert_array_equal(explanation.undirected(src == 2, bond_of_edge, 3), [0, 1, 0])
  # Leaving atom 1 (bonded to all): each bond once.
  np.testing.assert_array_equal(explanation.undirected(src == 1, bond_of_edge, 3), [1, 1, 1])


def _red_minus_blue(png: bytes) -> float:
  image = drawing._image(png)[..., :3]  # pylint: disable=protected-access
  return float(np.mean(image[..., 0] - image[..., 2]))


def test_drawing_colours_by_sign_and_writes_pngs(tmp_path):
  positive = drawing.structure_png("CCO", np.ones(3), np.ones(2))
  negative = drawing.structure_png("CCO", -np.ones(3), -np.ones(2))
  assert _red_minus_blue(positive) > 0.02 > -0.02 > _red_minus_blue(negative)
  drawing.draw_attributions("CCO", np.array([1.0, 0.0, -1.0]), np.array([0.5, -0.5]),
                            str(tmp_path / "one.png"), "CCO\ny = 1")
  drawing.grid(SMILES, [np.ones(3), np.ones(6)], [np.ones(2), np.ones(6)],
               str(tmp_path / "grid.png"), ["a", "b"])
  for name in ("one.png", "grid.png"):
    assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(ValueError, match="3 atoms"):
    drawing.structure_png("CCO", np.ones(2), np.ones(2))


def test_choice_of_molecules_and_target():
  task = linear_task(SMILES)
  positions, ids = explanation.chosen(task, explain_cfg(examples=1))
  assert positions.tolist() == [0] and ids.tolist() == [0]
  assert explanation.chosen(task, explain_cfg(indices=(1,)))[1].tolist() == [1]
  with pytest.raises(InputError, match=r"\[5\] outside split 'val'"):
    explanation.chosen(task, explain_cfg(indices=(5,)))
  with pytest.raises(InputError, match="has no examples"):
    explanation.chosen(task, explain_cfg(split="test"))
  assert explanation.target_task(task, explain_cfg(target=-1)) == 0
  assert explanation.target_task(task, explain_cfg(target=1)) == 1
  with pytest.raises(InputError, match="2 task"):
    explanation.target_task(task, explain_cfg(target=2))


def test_a_lone_atom_has_no_bond_part(tmp_path):
  inputs = explanation.prepare(linear_task(["C"]), linear_variables(1.0, 0.0, 0.0), 0, 0)
  assert list(inputs.parts) == ["atoms"] and inputs.parts["atoms"][0].shape[1] == 1
  drawing.draw_attributions("C", np.ones(1), np.zeros(0), str(tmp_path / "c.png"))
  assert (tmp_path / "c.png").exists()


def test_single_block_has_no_padding_but_the_reserved_slot():
  task = linear_task(SMILES)
  block = explanation.single_block(task, 1)  # benzene: 6 atoms, 12 directed edges
  assert block["atom_features"].shape == (1, 7, featurize.ATOM_DIM)
  assert block["node_mask"].tolist() == [[1] * 6 + [0]]
  assert block["bond_features"].shape == (1, 12, featurize.BOND_DIM)
  assert block["edge_mask"].min() == 1


def test_explain_config_takes_the_saved_run_and_the_explain_flags_given(tmp_path):
  with pytest.raises(InputError, match="not a trained molecule workdir"):
    molecule_main.explain_config(molecule_configs.get_config("quick"), str(tmp_path))
  trained = molecule_configs.get_config("quick,smoke")
  trained.explain.ig_steps, trained.explain.examples = 16, 8
  trained.mesh.data = 8
  molecule_main.workdir_lib.save_config(str(tmp_path), trained)
  (tmp_path / task_lib.METADATA_FILE).write_text("{}")
  command_line = molecule_configs.get_config("esol")
  saved, run_dir = molecule_main.explain_config(command_line, str(tmp_path),
                                                {"examples": 2, "method": "smoothgrad"})
  assert run_dir == str(tmp_path)
  assert (saved.explain.examples, saved.explain.method) == (2, "smoothgrad")
  assert saved.explain.ig_steps == 16  # not given: the run's saved value
  assert saved.mesh.data == command_line.mesh.data  # this machine's mesh
  assert (saved.task.dataset, saved.task.hidden) == ("tpsa", 16)  # the run's task


# ---------------------------------------------------------------- end to end (slow)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, molecule_cache):
  """A 3-step quick,smoke run (tiny D-MPNN) on the embedded TPSA file."""
  workdir = str(tmp_path_factory.mktemp("mol_explain"))
  config = molecule_configs.get_config("quick,smoke")
  config.async_checkpoints = False
  config.total_steps, config.eval_every, config.checkpoint_every = 3, 3, 3
  config.task.update(dict(cache_dir=molecule_cache, split_fractions=(0.98, 0.01, 0.01)))
  task = task_lib.MoleculeTask(config.task, config.batch_size)
  task_lib.resolve_best_metric(config, task)
  molecule_main.workdir_lib.save_config(workdir, config)
  task.write_run_files(workdir)
  train.train_and_evaluate(config, workdir, task)
  return config, workdir, task


@pytest.mark.slow
def test_explain_mode_writes_figures_tables_and_checks(trained_run):
  config, workdir, _ = trained_run
  command_line = config.copy_and_resolve_references()
  command_line.task.hidden = 999  # not an explain field: the saved config's task wins
  result = molecule_main.explain(command_line, workdir, dict(
      indices=(1,), ig_steps=32, faithfulness_steps=5, random_seeds=2, split="val"))
  out = f"{workdir}/explain"
  with open(f"{out}/checks.json", encoding="utf-8") as f:
    saved = json.load(f)
  assert saved["summary"]["atoms"] == pytest.approx(result["summary"]["atoms"])
  (m,) = saved["molecules"]
  task = trained_run[2]
  assert m["position"] == 1 and m["index"] == int(task.split["val"][1])
  assert m["smiles"] == task.data.smiles[m["index"]] and m["row"] == task.data.rows[m["index"]]
  for part in ("atoms", "bonds"):
    gap = m[part]["integrated_gradients_completeness"]
    assert gap["steps"] == 32 and gap["relative_gap_max"] < 0.05
    assert np.isfinite(m[part]["randomisation_per_item"]["abs"])
  mol = featurize.mol_from_smiles(m["smiles"])
  atoms = pd.read_csv(f"{out}/atom_attributions.csv")
  assert atoms.element.tolist() == [a.GetSymbol() for a in mol.GetAtoms()]
  assert set(atoms.row) == {m["row"]}
  # Completeness: the atoms' attributions add up to f(x) - f(baseline), up to IG's gap.
  assert abs(atoms.attribution.sum()) == pytest.approx(
      m["atoms"]["integrated_gradients_completeness"]["score_change_mean"], rel=0.05)
  bonds = pd.read_csv(f"{out}/bond_attributions.csv")
  assert len(bonds) == mol.GetNumBonds()
  for name in ("molecule_001.png", "grid.png", "faithfulness_atoms.png",
               "faithfulness_bonds.png"):
    assert os.path.getsize(f"{out}/{name}") > 0
