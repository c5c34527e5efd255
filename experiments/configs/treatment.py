"""Personalised treatment by reinforcement learning: PPO on patient simulators.

  python -m experiments.treatment --config=experiments/configs/treatment.py:t1d_adult_ppo \
      --workdir=/tmp/t1d_adult_ppo

Presets: quick (a tiny T1D PPO run, well under a minute on a CPU), t1d_adult_ppo
(train on adult#001-007, evaluate on held-out adult#008-010, adolescents and
children), t1d_absolute_ppo (the same with an absolute basal-rate action, no
bolus), sepsis_quick and sepsis_ppo (the ICU-Sepsis MDP). One engine step is one
PPO update; `batch_size` is the number of parallel envs. Any field can be
overridden by flag, e.g. `--config.task.num_steps=240`.
"""

import ml_collections

from medjax.engine.config import base_config

PRESETS = ("quick", "t1d_adult_ppo", "t1d_absolute_ppo", "sepsis_quick", "sepsis_ppo")


def task_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      env="t1d",  # t1d | sepsis
      # T1D: patients, device, simulator
      params_dir="",  # folder of simglucose's CSVs; "" -> the installed simglucose
      train_patients="adult#001-007",
      # ';'-separated groups, each 'label=patients' (the label names the evaluator)
      test_groups=("adult=adult#008-010;adolescent=adolescent#001-010;"
                   "child=child#001-010"),
      pump="Insulet",
      sensor="Dexcom",
      cgm_noise=True,
      substeps=2,  # RK4 steps per simulated minute
      days=1,  # simulated days of meals per episode
      episode_steps=0,  # steps per episode; 0: days * 1440 / the sensor's sample time
      action="scaled",  # scaled: [basal, bolus] multiples of the patient's doses | absolute
      max_basal_multiple=2.0,
      max_bolus_multiple=2.0,
      max_basal_rate=0.05,  # U/min, action=absolute
      squash="tanh",
      reward="risk_diff",  # risk_diff (simglucose's) | risk (minus the step's risk)
      termination_penalty=0.0,  # subtracted on the step whose BG ends the episode
      # evaluation
      val_episodes=2,  # per training patient, periodic (best checkpoint)
      eval_episodes=20,  # per held-out patient, once at the end
      pid_tune_episodes=1,
      eval_seed=1000,
      trace_patients=3,
      eval_chunk=256,  # episodes simulated at once (one compiled shape)
      # sepsis
      sepsis_path="",  # dynamics.npz or its folder; "" -> the installed icu-sepsis
      # PPO
      hidden=(64, 64),
      activation="tanh",
      log_std_init=-1.0,
      num_steps=120,  # rollout length per update
      num_epochs=4,
      num_minibatches=4,
      gamma=0.99,
      gae_lambda=0.95,
      clip_eps=0.2,
      vf_coef=0.5,
      ent_coef=0.0,
      normalize_advantages=True,
      clip_value=False,
      reward_scale=1.0,
  ))


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
  preset = arg or "quick"
  if preset not in PRESETS:
    raise ValueError(f"unknown treatment preset {preset!r}; known: {sorted(PRESETS)}")
  c = base_config()
  c.task = task_config()
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 3e-4
  c.optimizer.schedule = "constant"
  c.optimizer.grad_clip_norm = 0.5
  c.best_metric = "val/risk_index"
  c.best_mode = "min"
  c.keep_checkpoints = 2
  if preset == "quick":
    c.task.train_patients = "adult#001-002"
    c.task.test_groups = "adult=adult#008"
    c.task.episode_steps = 60  # 3 h: a smoke test, not a clinical day
    c.task.eval_chunk = 8
    c.task.num_steps = 16
    c.task.hidden = (16, 16)
    c.task.val_episodes = 1
    c.task.eval_episodes = 2
    c.task.trace_patients = 1
    c.batch_size = 8
    c.total_steps = 6
    c.log_every = 2
    c.eval_every = 0
    c.checkpoint_every = 3
  elif preset in ("t1d_adult_ppo", "t1d_absolute_ppo"):
    c.task.reward = "risk"
    c.task.termination_penalty = 1000.0  # > the discounted risk of any day
    # Returns of O(1): with 0.1 the value loss (~80) dominated the clipped global
    # gradient norm and the policy barely moved but drifted (more hypoglycaemia).
    c.task.reward_scale = 0.01
    c.optimizer.schedule = "cosine"
    c.batch_size = 56  # 8 envs per training adult
    c.total_steps = 300  # 300 x 56 x 120 = 2.0M env steps (4,200 patient-days)
    c.log_every = 10
    c.eval_every = 25
    c.checkpoint_every = 50
    if preset == "t1d_absolute_ppo":
      c.task.action = "absolute"
  else:
    c.task.env = "sepsis"
    c.best_metric = "sepsis/ppo_survival"
    c.best_mode = "max"
    c.task.gamma = 1.0
    c.task.gae_lambda = 0.95
    c.task.ent_coef = 0.01
    c.task.num_steps = 64
    c.optimizer.learning_rate = 1e-3
    c.batch_size = 64 if preset == "sepsis_quick" else 256
    c.total_steps = 10 if preset == "sepsis_quick" else 200  # 3.3M env steps
    c.log_every = 5 if preset == "sepsis_quick" else 20
    c.eval_every = 0 if preset == "sepsis_quick" else 50
    c.checkpoint_every = 5 if preset == "sepsis_quick" else 100
  return c
