"""The embedded default stack: a private Mosquitto and a private PostgreSQL cluster.

Both run from Kouan's own config files under ``$KOUAN_HOME`` (``.kouan/`` in the
working directory by default) on their own ports, so a broker or database already
on the machine is never reconfigured.
"""
