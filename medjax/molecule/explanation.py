"""Atom and bond attributions of a trained molecule model (`--mode=explain`).

For the chosen molecules of `config.explain.split` (the first `examples`, or
`indices`), the model's output for task `config.explain.target` (-1: task 0;
regression in target units, classification as the logit of the task, or of the
predicted class for multiclass) is attributed to the atom feature rows (summed over
features: one number per atom) and, separately, to the bond feature rows (the two
directed edges of a bond summed: one number per RDKit bond). Each molecule is packed
alone into a block of exactly its size, so score i depends on x[i] only and the
deletion / insertion curves (whole atoms / bonds set to the all-zero baseline, the
graph structure kept) run over real atoms and bonds, no padding. Molecule-level
descriptors, when the model has them, stay fixed: only the graph is attributed.

Writes `<workdir>/explain/`: one PNG per molecule and a grid (`drawing.py`),
faithfulness curves for atoms and bonds, `checks.json`, `atom_attributions.csv` and
`bond_attributions.csv`.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from absl import logging

from medjax.engine.errors import InputError
from medjax.explain import checks as checks_lib
from medjax.explain import figures
from medjax.explain import loading
from medjax.explain import mode
from medjax.explain import report
from medjax.molecule import batching, drawing, featurize

HEADLINE = ("relative_gap_mean", "rho_abs", "deletion_auc", "random_deletion_auc",
            "insertion_auc", "random_insertion_auc")


@dataclasses.dataclass
class Explained:
  """One molecule's attributions (atoms / bonds in RDKit order) and checks."""
  position: int  # in the split
  index: int  # molecule id in the dataset
  row: int  # its data row in the input file (0-based)
  smiles: str
  prediction: str  # for titles, e.g. "tpsa = 41.3"
  atoms: np.ndarray
  bonds: np.ndarray
  checks: dict  # "atoms" / "bonds": report.explain_and_check's dict (bonds: None if none)


# ---------------------------------------------------------------- choice and packing


def chosen(task, explain_cfg) -> tuple[np.ndarray, np.ndarray]:
  """(positions in the split, dataset ids) of the molecules to explain."""
  split = explain_cfg.split
  if split not in task.split:
    raise InputError(f"--config.explain.split={split}: one of {', '.join(task.split)}")
  ids = np.asarray(task.split[split])
  positions = np.asarray(mode.example_indices(explain_cfg, len(ids)), np.int64)
  return positions, ids[positions]


def target_task(task, explain_cfg) -> int:
  """The task index explained: `config.explain.target`, -1 -> 0."""
  t = mode.check_target(explain_cfg.target, len(task.task_names), "task", "task 0")
  return 0 if t == -1 else t


def single_block(task, i: int) -> dict[str, np.ndarray]:
  """Molecule `i` alone in a batch of one block of exactly its atoms (+ the padding
  slot) and directed edges (at least one slot)."""
  store = task.data.store
  atoms, edges = int(store.num_atoms[i]), int(store.num_edges[i])
  budget = batching.Budget(graphs=1, nodes=atoms + 1, edges=max(edges, 1))
  packer = batching.BlockPacker(store, budget, task.normalised_targets, task.descriptors)
  return batching.stack_blocks([packer.pack([i])])


def trimmed_apply(task, block: dict, input_key: str, rows: int):
  """(variables, x (1, rows, F)) -> outputs, x zero-padded to the block's slots."""
  apply = loading.model_apply(task, block, input_key)
  pad = block[input_key].shape[1] - rows

  def fn(variables, x, **kw):
    return apply(variables, jnp.pad(x, ((0, 0), (0, pad), (0, 0))), **kw)

  return fn


# ---------------------------------------------------------------- scores


def output_fn(task, t: int, cls: int | None = None):
  """Outputs (1, 1, out) -> (1,): the explained score of task `t`."""
  if task.task_type == "regression":
    mean, std = float(task.target_mean[t]), float(task.target_std[t])
    return lambda o: o[:, 0, t] * std + mean
  if task.task_type == "binary":
    return lambda o: o[:, 0, t]
  c = task.num_classes
  return lambda o: o[:, 0, t * c + cls]


def probability_fn(task, t: int, cls: int | None = None):
  """Outputs -> the probability explained (deletion / insertion units), or None."""
  if task.task_type == "binary":
    return lambda o: jax.nn.sigmoid(o[:, 0, t])
  if task.task_type == "multiclass":
    c = task.num_classes
    return lambda o: jax.nn.softmax(o[:, 0, t * c:(t + 1) * c], axis=-1)[:, cls]
  return None


def describe(task, t: int, raw: np.ndarray) -> tuple[str, int | None]:
  """(prediction text, predicted class for multiclass) from raw outputs (out,)."""
  pred = task.postprocess(np.asarray(raw)[None])[0]
  name = task.task_names[t]
  if task.task_type == "regression":
    return f"{name} = {pred[t]:.4g}", None
  if task.task_type == "binary":
    return f"P({name}) = {pred[t]:.3f}", None
  cls = int(np.argmax(pred[t]))
  return f"{name}: class {cls} (p = {pred[t, cls]:.3f})", cls


# ---------------------------------------------------------------- bonds


def edge_bonds(mol, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
  """RDKit bond index of each directed edge (src[j] -> dst[j])."""
  out = np.empty(len(src), np.int64)
  for j, (a, b) in enumerate(zip(src, dst)):
    bond = mol.GetBondBetweenAtoms(int(a), int(b))
    if bond is None:
      raise ValueError(f"edge {j}: atoms {a} and {b} are not bonded")
    out[j] = bond.GetIdx()
  return out


def undirected(edge_attr: np.ndarray, bond_of_edge: np.ndarray, bonds: int) -> np.ndarray:
  """Per-edge attributions (E,) summed into their undirected bonds (bonds,)."""
  return np.bincount(bond_of_edge, weights=np.asarray(edge_attr, np.float64),
                     minlength=bonds)[:bonds]


# ---------------------------------------------------------------- one molecule


@dataclasses.dataclass
class Inputs:
  """What one molecule's explanation runs on: per part ("atoms", "bonds") the input
  rows x (1, rows, F) and the model as (variables, x) -> outputs; the score."""
  mol: object  # the RDKit molecule
  parts: dict  # part -> (x, apply)
  bond_of_edge: np.ndarray  # RDKit bond of each directed edge row
  output: object  # outputs -> (1,) explained score
  probability: object  # outputs -> (1,) probability, or None (regression)
  prediction: str


def prepare(task, variables, i: int, t: int) -> Inputs:
  """Molecule `i` packed alone, its prediction under `variables` and task `t`'s score."""
  block = single_block(task, i)
  mol = featurize.mol_from_smiles(task.data.smiles[i])
  atoms, edges = int(task.data.store.num_atoms[i]), int(task.data.store.num_edges[i])
  raw = task.model.apply(variables, **task.model_inputs(block), train=False)
  text, cls = describe(task, t, np.asarray(raw)[0, 0])
  parts = {"atoms": (jnp.asarray(block["atom_features"][:, :atoms]),
                     trimmed_apply(task, block, "atom_features", atoms))}
  bond_of_edge = np.zeros(0, np.int64)
  if edges:  # a lone atom has no bond rows to attribute
    parts["bonds"] = (jnp.asarray(block["bond_features"][:, :edges]),
                      trimmed_apply(task, block, "bond_features", edges))
    bond_of_edge = edge_bonds(mol, block["edge_src"][0, :edges], block["edge_dst"][0, :edges])
  return Inputs(mol, parts, bond_of_edge, output_fn(task, t, cls), probability_fn(task, t, cls),
                text)


def per_item(inputs: Inputs, part: str, row_attr) -> np.ndarray:
  """Row attributions (rows,) -> per atom, or per undirected bond (edges summed)."""
  if part == "atoms":
    return np.asarray(row_attr, np.float64)
  return undirected(row_attr, inputs.bond_of_edge, inputs.mol.GetNumBonds())


def explain_part(inputs: Inputs, part: str, variables, random_variables, explain_cfg,
                 key) -> tuple[np.ndarray, dict]:
  """(attributions per atom / bond, `report.explain_and_check`'s checks) of one part."""
  x, apply = inputs.parts[part]
  options = report.method_options(explain_cfg, spatial_dims=1)
  if "patch" in options:  # occlusion: a window of atoms / bonds no longer than the molecule
    options["patch"] = (min(options["patch"][0], x.shape[1]),)
  attr, checks = report.explain_and_check(
      apply, variables, random_variables, x, inputs.output, key=key,
      method=explain_cfg.method, group_axes=1, ig_steps=explain_cfg.ig_steps,
      faithfulness_steps=explain_cfg.faithfulness_steps,
      random_seeds=explain_cfg.random_seeds, probability=inputs.probability, **options)
  items = per_item(inputs, part, attr[0].sum(-1))
  # The library's randomisation test ranks every (row, feature) element, mostly structural
  # zeros of the one-hot features (equal under any parameters), so its rho is near 1;
  # ranked per atom / bond it tests the explanation. Same key as `attr` (SmoothGrad).
  random_attr, _ = report.attribute_with(explain_cfg.method, apply, random_variables, x,
                                         inputs.output, key=jax.random.split(key)[0],
                                         **options)
  random_items = per_item(inputs, part, np.asarray(random_attr)[0].sum(-1))
  checks["randomisation_per_item"] = {
      "abs": float(checks_lib.spearman(np.abs(items)[None], np.abs(random_items)[None])[0]),
      "signed": float(checks_lib.spearman(items[None], random_items[None])[0]),
      "ranked": f"{len(items)} {part}, attributions summed over features"}
  return items, checks


def explain_molecule(task, variables, random_variables, i: int, t: int, explain_cfg,
                     key) -> tuple[np.ndarray, np.ndarray, dict, str]:
  """(atom attributions (atoms,), bond attributions (bonds,), checks, prediction text);
  checks["bonds"] is None for a molecule without bonds."""
  inputs = prepare(task, variables, i, t)
  keys = dict(zip(("atoms", "bonds"), jax.random.split(key)))
  attr = {"bonds": np.zeros(inputs.mol.GetNumBonds())}
  checks = {"bonds": None}
  for part in inputs.parts:
    attr[part], checks[part] = explain_part(inputs, part, variables, random_variables,
                                            explain_cfg, keys[part])
  return attr["atoms"], attr["bonds"], checks, inputs.prediction


# ---------------------------------------------------------------- outputs


def headline(checks: dict) -> dict[str, float]:
  """The numbers printed per part: IG completeness, randomisation rho (per atom / bond),
  deletion / insertion AUCs of the attribution and of random orderings."""
  faith = checks["faithfulness"]
  return {"relative_gap_mean": checks["integrated_gradients_completeness"]["relative_gap_mean"],
          "rho_abs": checks["randomisation_per_item"]["abs"],
          **{k: faith[k] for k in HEADLINE[2:]}}


def summary(explained: list[Explained]) -> dict:
  """Per part (atoms, bonds): the mean over molecules of each headline number."""
  out = {}
  for part in ("atoms", "bonds"):
    rows = [headline(e.checks[part]) for e in explained if e.checks[part] is not None]
    if rows:
      out[part] = {k: float(np.mean([r[k] for r in rows])) for k in HEADLINE}
      out[part]["faithful_fraction"] = float(np.mean(
          [e.checks[part]["faithful"] for e in explained if e.checks[part] is not None]))
      out[part]["molecules"] = len(rows)
  return out


def merged_curves(checks: list[dict]) -> dict:
  """Per-molecule faithfulness curves stacked, as `figures.faithfulness_curves` reads
  them (plotted at the mean fraction: molecules differ in size)."""
  out = {}
  for curve in ("deletion", "insertion"):
    parts = [c["_faithfulness_curves"]["per_example"][curve] for c in checks]
    out[curve] = {k: np.concatenate([p[k] for p in parts])
                  for k in ("curve", "random_curve", "auc", "random_auc")}
    out[curve]["fraction"] = np.mean([p["fraction"] for p in parts], axis=0)
  return {"per_example": out}


def write_tables(explained: list[Explained], out_dir: str) -> None:
  atoms, bonds = [], []
  for e in explained:
    mol = featurize.mol_from_smiles(e.smiles)
    for a, value in zip(mol.GetAtoms(), e.atoms):
      atoms.append((e.position, e.row, e.smiles, a.GetIdx(), a.GetSymbol(), value))
    for b, value in zip(mol.GetBonds(), e.bonds):
      bonds.append((e.position, e.row, e.smiles, b.GetIdx(), b.GetBeginAtomIdx(),
                    b.GetEndAtomIdx(), str(b.GetBondType()), value))
  pd.DataFrame(atoms, columns=["molecule", "row", "smiles", "atom", "element",
                               "attribution"]).to_csv(
                                   os.path.join(out_dir, "atom_attributions.csv"), index=False)
  pd.DataFrame(bonds, columns=["molecule", "row", "smiles", "bond", "begin", "end",
                               "bond_type", "attribution"]).to_csv(
                                   os.path.join(out_dir, "bond_attributions.csv"), index=False)


def write_outputs(explained: list[Explained], out_dir: str, info: dict) -> dict:
  """Figures, tables and checks.json; returns the JSON-ready result."""
  os.makedirs(out_dir, exist_ok=True)
  for e in explained:
    drawing.draw_attributions(e.smiles, e.atoms, e.bonds,
                              os.path.join(out_dir, f"molecule_{e.position:03d}.png"),
                              f"{e.smiles}\n{e.prediction}")
  drawing.grid([e.smiles for e in explained], [e.atoms for e in explained],
               [e.bonds for e in explained], os.path.join(out_dir, "grid.png"),
               [f"#{e.position}: {e.prediction}" for e in explained])
  for part in ("atoms", "bonds"):
    checks = [e.checks[part] for e in explained if e.checks[part] is not None]
    if checks:
      figures.faithfulness_curves(merged_curves(checks),
                                  os.path.join(out_dir, f"faithfulness_{part}.png"),
                                  f"{info['method']}: {part} deleted / inserted")
  write_tables(explained, out_dir)
  result = {**info, "summary": summary(explained),
            "molecules": [{"position": e.position, "index": e.index, "row": e.row,
                           "smiles": e.smiles,
                           "prediction": e.prediction, **e.checks} for e in explained]}
  report.write_json(result, os.path.join(out_dir, mode.CHECKS_FILE))
  return result


def run_info(task, t: int, explain_cfg) -> dict:
  descriptors = bool(task.cfg.descriptors)
  return {
      "method": explain_cfg.method, "split": explain_cfg.split, "target_task": t,
      "target_name": task.task_names[t], "task_type": task.task_type,
      "score": {"regression": "prediction in target units",
                "binary": "logit (deletion / insertion in probability)",
                "multiclass": "logit of the predicted class (deletion / insertion in "
                              "probability)"}[task.task_type],
      "baseline": "all-zero atom (bond) features, graph structure and the other part kept",
      "descriptors": ("molecule-level descriptors fixed at each molecule's values: only the "
                      "graph (atoms, bonds) is attributed") if descriptors else "none",
  }


def explain(config, workdir: str, task) -> dict:
  """Explains the chosen molecules of a trained run; writes `<workdir>/explain/`."""
  explain_cfg = config.explain
  mode.refuse_gradcam(explain_cfg.method, "a graph network has no convolutional feature "
                      "map; use gradients, grad_x_input, smoothgrad, integrated_gradients "
                      "or occlusion")
  positions, ids = chosen(task, explain_cfg)
  t = target_task(task, explain_cfg)
  variables, random_variables = mode.trained_and_random(config, workdir, task,
                                                        seed=explain_cfg.seed)
  key = jax.random.key(explain_cfg.seed)
  explained = []
  for k, (position, i) in enumerate(zip(positions, ids)):
    start = time.perf_counter()
    atoms, bonds, checks, text = explain_molecule(
        task, variables, random_variables, int(i), t, explain_cfg,
        jax.random.fold_in(key, int(position)))
    explained.append(Explained(int(position), int(i), int(task.data.rows[i]),
                               task.data.smiles[i], text, atoms, bonds, checks))
    logging.info("explained molecule %d of %d (%s) in %.1fs", k + 1, len(ids),
                 task.data.smiles[i], time.perf_counter() - start)
  return write_outputs(explained, os.path.join(workdir, mode.OUT_DIR),
                       run_info(task, t, explain_cfg))
