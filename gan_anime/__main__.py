"""``python -m gan_anime``: the command line (see :mod:`gan_anime.cli.main`, ``--help``)."""

from gan_anime.cli.main import run

if __name__ == "__main__":
    run()
