from trustfit.cli import app

app()
