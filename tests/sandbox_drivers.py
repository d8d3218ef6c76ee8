"""Driver functions the sandbox tests run in the child (stand-ins for hostile submission code)."""

import os
import socket

import numpy as np


def echo(args):
    return {"array": np.arange(4, dtype=np.float64) * args["k"], "k": args["k"], "cwd_has_sub": os.getcwd().endswith("submission")}


def open_socket(args):
    s = socket.socket()
    s.connect(("127.0.0.1", 9))
    return {}


def read_ssh(args):
    with open(os.path.expanduser(args["path"])) as f:
        return f.read()


def write_outside(args):
    with open(args["path"], "w") as f:
        f.write("x")
    return {}


def spin(args):
    while True:
        pass


def env(args):
    return dict(os.environ)
