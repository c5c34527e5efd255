"""ICU and visit-code sequence models: GRU / LSTM, GRU-D, Transformer, mTAN, RETAIN."""

from medjax.ehr.models.grud import GRUD, GRUDCell
from medjax.ehr.models.mtan import MTAN
from medjax.ehr.models.retain import RETAIN
from medjax.ehr.models.rnn import RNNClassifier
from medjax.ehr.models.transformer import TransformerClassifier

__all__ = ["GRUD", "GRUDCell", "MTAN", "RETAIN", "RNNClassifier", "TransformerClassifier"]
