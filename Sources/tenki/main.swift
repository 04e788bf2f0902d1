print("tenki")
