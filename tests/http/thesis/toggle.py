import requests
import json
import time
import RPi.GPIO as GPIO

GPIO.setmode(GPIO.BOARD)
GPIO.setup(7, GPIO.OUT)
GPIO.output(7, 0)
print("Setting GPIO low")
time.sleep(5)

url = "http://192.168.200.12:8333/supervisor/secc/EVIS_B_CHA/update/command"

payloadCharge = {
    "interface": 2,
    "request_code": 3,
    "discharge_compatible": True,
    "discharge_mode": False,
    "dynamic_mode": True,
    "imd_external": False,
    "imd_state": 0
}

payloadDischarge = {
    "interface": 2,
    "request_code": 3,
    "discharge_compatible": True,
    "discharge_mode": True,
    "dynamic_mode": True,
    "imd_external": False,
    "imd_state": 0
}

username = "user"
password = "pass"
auth = (username, password)

try:
    response = requests.put(url, json=payloadCharge, auth=auth)
    if response.status_code == 200:
        print("Request successful! Set charging mode")
        GPIO.output(7, 1)
        print("Setting GPIO low")
    else:
        print(f"Request failed with status code {response.status_code}")
except requests.RequestException as e:
    print(f"Error: {e}")

time.sleep(2)
GPIO.output(7, 0)
print("Setting GPIO low")
print("Waiting 30 seconds")
print()
time.sleep(30)

try:
    response = requests.put(url, json=payloadDischarge, auth=auth)
    if response.status_code == 200:
        print("Request successful! Set discharging mode")
        GPIO.output(7, 1)
    else:
        print(f"Request failed with status code {response.status_code}")
except requests.RequestException as e:
    print(f"Error: {e}")

time.sleep(2)
GPIO.output(7, 0)
print("Setting GPIO low")
print("Waiting 30 seconds")
print()
time.sleep(30)

try:
    response = requests.put(url, json=payloadCharge, auth=auth)
    if response.status_code == 200:
        print("Request successful! Set charging mode")
        GPIO.output(7, 1)
    else:
        print(f"Request failed with status code {response.status_code}")
except requests.RequestException as e:
    print(f"Error: {e}")

time.sleep(2)
GPIO.output(7, 0)
print("Setting GPIO low")
print("Waiting 30 seconds")
print()
time.sleep(30)

try:
    response = requests.put(url, json=payloadDischarge, auth=auth)
    if response.status_code == 200:
        print("Request successful! Set discharging mode")
        GPIO.output(7, 1)
    else:
        print(f"Request failed with status code {response.status_code}")
except requests.RequestException as e:
    print(f"Error: {e}")

time.sleep(2)
GPIO.output(7, 0)
print("Setting GPIO low")
GPIO.cleanup()
