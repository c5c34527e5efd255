"""EHR sequence modelling: in-hospital mortality from ICU time series and visit codes.

Modules:
  physionet   PhysioNet/CinC 2012 stay files: parse, clean, cached set loader
  data        IcuData: stays as flat irregular events + static features + labels
  binning     hourly bins, masks, time since last observation; per-time tokens
  normalise   training-split statistics (JSON-serialisable)
  synthetic   synthetic ICU stays with deterioration patterns (quick runs, tests)
  codes       visit-code sequences from MIMIC-III / eICU tables
  splits      stratified k-fold and repeated random splits (optionally grouped)
  examples    per-stay model inputs and padded collation
  models      GRU / LSTM, GRU-D, Transformer, RETAIN
  attribution gradient x input (medjax.explain) from the predict function, for the report
  calibration temperature scaling of the risk, fitted on validation (calibration.json)
  evaluation  AUROC, AUPRC, Brier, log loss, ECE of the calibrated risk; the split evaluator
  task        EhrTask, the engine's Task for all of the above
  report      end-of-run predictions, reliability diagrams, one patient explained
  explanation --mode=explain: attributions of chosen stays and their trust checks
  crossval    k-fold / repeated-split runs and mean +- sd
  external    evaluating a trained run on another set directory
"""
