"""Structure builders for systems the project predicts: twisted and shifted bilayers."""
