"""The modalities: one module (or folder) each, over the generic core.

Each defines ``SPEC`` (``registry.ModalitySpec``) and, where it differs from the core, hooks
(``registry.Modality``). The core finds them through ``registry.MODALITY_MODULES`` and never
imports them directly.
"""
