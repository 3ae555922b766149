"""The pluggy markers; plugin authors import ``hookimpl`` as ``from fogd import hookimpl``."""

import pluggy

hookspec = pluggy.HookspecMarker("fogd")
hookimpl = pluggy.HookimplMarker("fogd")
