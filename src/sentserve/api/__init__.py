"""HTTP: Flask + flask-restx, thin resources over the engine."""
