"""task.epochs: step counts from the training split's size, by hand."""

from experiments.configs import molecule as molecule_configs
from medjax.molecule import schedule


def test_epochs_set_steps_warmup_and_eval_interval():
  config = molecule_configs.get_config("tox21")
  config.batch_size, config.task.epochs, config.task.warmup_epochs = 50, 30, 2.0
  assert schedule.apply_epochs(config, train_molecules=1000)  # 20 steps an epoch
  assert config.total_steps == 600 and config.optimizer.warmup_steps == 40
  assert config.eval_every == 20 and config.checkpoint_every == 60 and config.log_every == 12
  # 130 molecules / 64 = 2.03 steps an epoch: 50 epochs -> round(101.6) = 102 steps.
  config.batch_size, config.task.epochs, config.task.warmup_epochs = 64, 50, 2.0
  schedule.apply_epochs(config, train_molecules=130)
  assert (config.total_steps, config.optimizer.warmup_steps, config.eval_every) == (102, 4, 2)


def test_tiny_sets_take_a_step_an_epoch_and_epochs_zero_keeps_steps():
  config = molecule_configs.get_config("csv")
  assert config.task.epochs == 50
  config.batch_size = 64
  schedule.apply_epochs(config, train_molecules=10)  # under a batch: 1 step an epoch
  assert (config.total_steps, config.optimizer.warmup_steps, config.eval_every) == (50, 2, 1)
  smoke = molecule_configs.get_config("bbbp,smoke")
  assert not schedule.apply_epochs(smoke, train_molecules=1000)
  assert smoke.total_steps == 1 and smoke.optimizer.warmup_steps == 0
