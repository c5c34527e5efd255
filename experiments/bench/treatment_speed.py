"""Simulator and agent throughput of the treatment task (`benchmark --mode=treatment`).

Rows: env steps/s of the JAX T1D simulator and ICU-Sepsis MDP at each batch of
parallel patients (jit + vmap + lax.scan, random meals, CGM noise, basal insulin;
random sepsis actions with auto-reset), the reference packages stepped one env at
a time in the same process (simglucose's T1DSimEnv, icu-sepsis's gymnasium env),
and PPO training throughput: env steps/s of whole engine train steps (rollout +
GAE + the PPO epochs) of the `t1d_adult_ppo` and `sepsis_ppo` presets.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import time

import jax

from medjax.treatment.envs import speed


def ppo_throughput(preset: str, updates: int = 5) -> tuple[int, float]:
  """(env steps per update, env steps/s) of the engine's train step for `preset`."""
  from experiments.configs import treatment as configs  # pylint: disable=import-outside-toplevel
  from medjax.engine import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
  from medjax.engine import steps  # pylint: disable=import-outside-toplevel
  from medjax.treatment import task as task_lib  # pylint: disable=import-outside-toplevel
  config = configs.get_config(preset)
  task = task_lib.TreatmentTask(config.task, config.batch_size)
  mesh = mesh_lib.make_mesh(config.mesh)
  state, train_step, _ = steps.build(task, config, mesh)
  batch = mesh_lib.shard_batch(next(iter(task.train_dataset(config.batch_size, 0))), mesh)
  state, metrics = train_step(state, batch)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(updates):
    state, metrics = train_step(state, batch)
  jax.block_until_ready(metrics)
  per_update = config.batch_size * config.task.num_steps
  return per_update, per_update * updates / (time.perf_counter() - start)


def rows(batches, t1d_steps: int = 480, sepsis_steps: int = 1000, ppo_updates: int = 5):
  simglucose, icu = speed.simglucose_t1d(), speed.icu_sepsis_reference()
  device = jax.devices()[0].device_kind
  out = [dict(what="simglucose T1DSimEnv (reference)", batch=1, steps_per_s=simglucose,
              vs_reference=1.0)]
  out += [dict(what="medjax T1D (UVA/Padova, RK4)", batch=b,
               steps_per_s=speed.jax_t1d(b, t1d_steps), vs_reference=None) for b in batches]
  out.append(dict(what="icu-sepsis gymnasium env (reference)", batch=1, steps_per_s=icu,
                  vs_reference=1.0))
  out += [dict(what="medjax ICU-Sepsis MDP", batch=b,
               steps_per_s=speed.jax_sepsis(b, sepsis_steps), vs_reference=None)
          for b in batches]
  for row in out:
    if row["vs_reference"] is None:
      row["vs_reference"] = row["steps_per_s"] / (simglucose if "T1D" in row["what"] else icu)
  for preset, ref in (("t1d_adult_ppo", simglucose), ("sepsis_ppo", icu)):
    per_update, rate = ppo_throughput(preset, ppo_updates)
    out.append(dict(what=f"PPO training, {preset} (rollout + update)", batch=per_update,
                    steps_per_s=rate, vs_reference=rate / ref))
  for row in out:
    row.update(steps_per_s=round(row["steps_per_s"], 1),
               vs_reference=round(row["vs_reference"], 1), device=device,
               date=datetime.date.today().isoformat(), jax=jax.__version__)
  return out


def write(table, out_dir: str) -> str:
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "treatment_speed.csv"), "w", newline="",
            encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=list(table[0]))
    writer.writeheader()
    writer.writerows(table)
  with open(os.path.join(out_dir, "results.jsonl"), "a", encoding="utf-8") as f:
    f.writelines(json.dumps(row) + "\n" for row in table)
  lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
  lines += ["| " + " | ".join(str(v) for v in row.values()) + " |" for row in table]
  lines += ["", "- batch: parallel envs (PPO rows: env steps per update); vs_reference: "
            "steps/s over the reference package's, measured in this run; PPO rows "
            "count env steps including the update."]
  text = "\n".join(lines) + "\n"
  with open(os.path.join(out_dir, "treatment_speed.md"), "w", encoding="utf-8") as f:
    f.write(text)
  return text
