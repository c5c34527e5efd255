"""Patient simulators as pure JAX functions, checked against their reference packages.

Modules:
  params       simglucose's parameter files (patients, pump, sensor, Quest), checked
  t1d_model    the UVA/Padova 2008 ODE and one-minute patient step (RK4)
  cgm          CGM noise: Johnson-SU AR(1) on a 15-min grid, cubic-spline samples
  scenario     meal scenarios, fixed or random, as padded arrays
  t1d          T1DEnv: patient + pump + CGM + meals, simglucose's env step
  controllers  simglucose's basal-bolus controller
  sepsis       the ICU-Sepsis MDP: sampling, exact policy values, value iteration
  speed        steps/s of these and of the reference packages
"""
