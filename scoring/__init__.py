"""Using the model: the champion's batch scores (stage score_customers) and ad hoc scoring (`mdp score`).

A layer above the other stage packages: it reads Gold as spark_apps writes it, the model as training
registers it, and reaches Postgres as ingestion does.
"""
