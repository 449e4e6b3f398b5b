"""Campaign operations shared by the API and the workers (both import these; these import domain and store)."""
