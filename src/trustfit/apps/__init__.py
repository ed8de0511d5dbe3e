"""Applied recipes on top of trained classifiers: the financial sentiment monitor and the
customer-service intent router."""
