"""Properties that hold for every declared module: the zoo's and a team's."""
