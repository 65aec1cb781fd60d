"""The loyalty program's rules: configuration (config.py), lot terms
(terms.py), computed earns (earn_rules.py), tiers and referrals."""
