"""One client request, top-down: the addon's options, the setup built from them and the config
(`assembly`), and the `router` (authenticate, classify, authorise, choose backends) with the
declared rule for what else a request sets off (`after_steps`), and browser form uploads, let
through once their form is read (`form_uploads`).

May import: everything below it (`addon.s3` to `addon.ops`).
"""
