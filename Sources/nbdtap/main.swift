print("nbdtap")
