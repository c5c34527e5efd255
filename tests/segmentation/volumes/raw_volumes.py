"""Tiny MSD-style folders of phantom volumes, written as NIfTI, for tests."""

import json
import os

import nibabel as nib

from medjax.segmentation.volumes import phantom


def write_case(folder, name, image, label, affine):
  os.makedirs(os.path.join(folder, "imagesTr"), exist_ok=True)
  os.makedirs(os.path.join(folder, "labelsTr"), exist_ok=True)
  nib.save(nib.Nifti1Image(image, affine), os.path.join(folder, "imagesTr", name))
  nib.save(nib.Nifti1Image(label, affine), os.path.join(folder, "labelsTr", name))


def write_msd(root, cases=3, shape=(12, 14, 10), modality="MRI", offset=0.0, scale=1.0):
  """`root`/imagesTr + labelsTr (phantom cases 0..cases-1) + dataset.json."""
  for i in range(cases):
    image, label = phantom.phantom_case(i, shape)
    write_case(root, f"case_{i:03d}.nii.gz", image.array[..., 0] * scale + offset,
               label.array, image.affine)
  with open(os.path.join(root, "dataset.json"), "w") as f:
    json.dump({"labels": {"0": "background", "1": "anterior", "2": "posterior"},
               "modality": {"0": modality}}, f)
  return root
