"""Atom and bond attributions drawn on the 2D structure with RDKit.

Atoms and bonds are highlighted in a diverging map (red: raises the explained score,
blue: lowers it), each on its own symmetric scale (atoms and bonds are attributed
separately); matplotlib adds the title and the two colour bars.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import cm, colors  # noqa: E402
from rdkit.Chem.Draw import rdMolDraw2D  # noqa: E402

from medjax.molecule import featurize  # noqa: E402

CMAP = "RdBu_r"


def _norm(values) -> colors.Normalize:
  lim = max(float(np.max(np.abs(values))) if len(values) else 0.0, 1e-12)
  return colors.Normalize(-lim, lim)


def _rgb(values, norm) -> dict[int, tuple[float, float, float]]:
  cmap = matplotlib.colormaps[CMAP]
  return {i: tuple(float(c) for c in cmap(norm(v))[:3]) for i, v in enumerate(values)}


def structure_png(smiles: str, atoms, bonds, size: tuple[int, int] = (420, 340)) -> bytes:
  """PNG bytes of the molecule with atoms / bonds coloured by their attributions."""
  mol = featurize.mol_from_smiles(smiles)
  if mol is None:
    raise ValueError(f"RDKit cannot parse {smiles!r}")
  if len(atoms) != mol.GetNumAtoms() or len(bonds) != mol.GetNumBonds():
    raise ValueError(f"{smiles}: {len(atoms)} atom / {len(bonds)} bond attributions for "
                     f"{mol.GetNumAtoms()} atoms / {mol.GetNumBonds()} bonds")
  drawer = rdMolDraw2D.MolDraw2DCairo(*size)
  drawer.drawOptions().useBWAtomPalette()
  drawer.drawOptions().highlightBondWidthMultiplier = 12
  rdMolDraw2D.PrepareAndDrawMolecule(
      drawer, mol, highlightAtoms=list(range(len(atoms))),
      highlightAtomColors=_rgb(atoms, _norm(atoms)),
      highlightBonds=list(range(len(bonds))),
      highlightBondColors=_rgb(bonds, _norm(bonds)),
      highlightAtomRadii={i: 0.4 for i in range(len(atoms))})
  drawer.FinishDrawing()
  return drawer.GetDrawingText()


def _image(png: bytes) -> np.ndarray:
  return mpimg.imread(io.BytesIO(png), format="png")


def draw_attributions(smiles: str, atoms, bonds, path: str, title: str = "") -> None:
  """One molecule: the structure coloured by attribution, its title and colour bars."""
  fig, (ax, *bars) = plt.subplots(3, 1, figsize=(5.6, 5.8),
                                  gridspec_kw={"height_ratios": [14, 0.5, 0.5]})
  ax.imshow(_image(structure_png(smiles, atoms, bonds)))
  ax.set_axis_off()
  ax.set_title(title, fontsize=8)
  for bar, values, label in zip(bars, (atoms, bonds), ("atom", "bond")):
    if len(values):
      fig.colorbar(cm.ScalarMappable(_norm(values), CMAP), cax=bar, orientation="horizontal",
                   label=f"{label} attribution")
    else:
      bar.set_axis_off()
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def grid(smiles: list[str], atoms: list, bonds: list, path: str, titles: list[str],
         columns: int = 4) -> None:
  """Several molecules side by side (each on its own colour scales)."""
  n = len(smiles)
  cols = min(columns, n)
  rows = -(-n // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False)
  for k, ax in enumerate(axes.flat):
    ax.set_axis_off()
    if k < n:
      ax.imshow(_image(structure_png(smiles[k], atoms[k], bonds[k], (360, 300))))
      ax.set_title(titles[k], fontsize=8)
  fig.suptitle("red: raises the score, blue: lowers it (each molecule on its own scale)",
               fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
