"""The Graphite function library: one module per graphite function group.

Importing this package registers every function with
`cyclone.query.registry`. To add a module, import it here; see the
registry module's docstring for how to write a function.
"""

from cyclone.query.functions import alias, calculate, combine, graph, special, transform  # noqa: F401
from cyclone.query.functions import forecast, math_transform  # noqa: F401  (math/calculate batch)
from cyclone.query.functions import filtering, grouping, ordering  # noqa: F401  (filter/sort/group batch)

__all__ = ["alias", "calculate", "combine", "filtering", "forecast", "graph", "grouping", "math_transform",
           "ordering", "special", "transform"]
