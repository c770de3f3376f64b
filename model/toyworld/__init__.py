"""A procedural toy world in which the whole BootPIG recipe (synth -> train -> eval) runs on a CPU."""
