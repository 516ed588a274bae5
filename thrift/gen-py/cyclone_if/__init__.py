__all__ = ['ttypes', 'constants', 'Cyclone']
