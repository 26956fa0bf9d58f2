from kouan.cli import app

app()
