from tirl.cli.main import app

app()
