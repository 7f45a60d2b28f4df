"""Synthetic chest-X-ray studies: phantoms with drawn findings, their reports and ground truth.

* :mod:`.phantom` -- :class:`~.phantom.PhantomSpec` and :func:`~.phantom.render` (frontal) /
  :func:`~.phantom.render_lateral`;
* :mod:`.reports` -- radiologist-style report text and the ground-truth findings it states;
* :mod:`.studies` -- :func:`~.studies.sample_study` (deterministic per seed) and
  :func:`~.studies.write_study` (PNG + JSON that ``load_study`` reads).
"""
