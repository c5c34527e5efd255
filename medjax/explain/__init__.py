"""Interpretability for every task: attribution methods, Grad-CAM, trust checks, figures.

    from medjax import explain
    fn = explain.target_score(lambda x: model.apply(variables, x, train=False), target)
    attr, gap = explain.integrated_gradients(fn, x, steps=32)
    rho = explain.randomisation_test(attribute, variables, random_variables, x)
    curves = explain.faithfulness(fn, x, attr, key)
"""

from medjax.explain.attributions import class_output
from medjax.explain.attributions import gradients
from medjax.explain.attributions import grad_x_input
from medjax.explain.attributions import integrated_gradients
from medjax.explain.attributions import occlusion
from medjax.explain.attributions import region_output
from medjax.explain.attributions import region_score
from medjax.explain.attributions import smoothgrad
from medjax.explain.attributions import target_score
from medjax.explain.checks import faithfulness
from medjax.explain.checks import randomisation_test
from medjax.explain.checks import spearman
from medjax.explain.gradcam import gradcam
from medjax.explain.gradcam import mark_features
from medjax.explain.methods import METHODS
from medjax.explain.methods import attribute
from medjax.explain.methods import check_method
from medjax.explain.report import explain_and_check
from medjax.explain.report import write_json
